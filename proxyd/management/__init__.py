"""The management API under ``/v0/management`` (management.md §3): access control and route table."""

from proxyd.management.routes import MANAGEMENT_ACCESS, add_management_routes

__all__ = ["MANAGEMENT_ACCESS", "add_management_routes"]
