"""Synthetic brains in the real input formats, built on the real Juelich maps; their truth is known."""
