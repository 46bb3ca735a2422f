"""Montage AI's engine: from clips and a song to a beat-synced MP4 and a timeline."""

__version__ = "0.1.0"
