"""Notification: who is told about which alerts, when, and never twice.

The stages follow Alertmanager's shape: route → group → mute (silences,
maintenance, flapping) → dedup against the notification log → the mail outbox.
"""
