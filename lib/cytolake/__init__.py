"""cytolake: a data lake and training pipeline for cytoarchitectonic mapping."""

__version__ = "0.1.0"
