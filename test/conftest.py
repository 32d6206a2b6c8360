"""Fixtures shared by the test modules. Add yours; keep the others'."""

from ros_fixtures import ros_domain, ros_probe  # noqa: F401 (fixtures, used by name)
