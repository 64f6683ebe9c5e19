"""File formats at the edges: tiled section images and manifests."""
