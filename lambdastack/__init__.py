"""lambdastack: a Lambda-architecture platform for real-time personalized feeds."""

__version__ = "0.1.0"
