"""Speed and memory of the pipeline's stages, each a ratio against a baseline taken in the same run."""
