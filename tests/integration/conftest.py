"""Integration fixtures shared across modules: the real control plane (see control_planes.py)."""

from tests.integration.control_planes import real_control_plane

__all__ = ["real_control_plane"]
