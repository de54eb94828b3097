"""jitgrant: just-in-time database access the GitOps way."""

__version__ = "0.2.0"
