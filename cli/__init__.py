"""Unmask: find AI-generated and manipulated faces in images, and show why."""

__version__ = "0.1.0"
