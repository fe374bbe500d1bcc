"""Numbered schema migrations (0001_name.sql ...), applied in order by controller.db."""
