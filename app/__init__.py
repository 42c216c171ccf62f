"""A lightweight SOVD command service."""
