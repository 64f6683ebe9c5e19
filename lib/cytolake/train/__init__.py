"""Contrastive feature learning: the pmap-weighted loss, the encoder, the streaming reader, the distributed seam."""
