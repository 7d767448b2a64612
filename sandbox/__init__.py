"""A local stand-in cluster on loopback: Kubernetes API, S3, DNS and simulated controllers."""
