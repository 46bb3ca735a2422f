"""The desktop app: a Qt window that runs the engine as a subprocess."""
