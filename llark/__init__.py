"""llark: an open, reproducible LLark-style music-understanding toolkit (audio + ABC in, text out)."""

__version__ = "0.1.0"
