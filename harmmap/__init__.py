"""harmmap: crime-harm mapping for the Police Race Action Plan pilot forces."""

__version__ = "0.1.0"
