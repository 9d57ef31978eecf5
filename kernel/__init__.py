"""Shared kernel: settings, logging, errors, UIDs and spool paths. No torch, no networking."""
