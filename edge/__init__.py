"""Scanner edge runtime: real-time AI on ultrasound and X-ray frames at the point of care."""

__version__ = "0.1.0"
