"""The sandbox API server (``sandbox.apiserver``) through real clients: kubernetes_asyncio, kubectl, HTTP."""
