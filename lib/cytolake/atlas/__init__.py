"""Reference space: the probabilistic maps (pmaps), their area table, and the MNI152 anatomy."""
