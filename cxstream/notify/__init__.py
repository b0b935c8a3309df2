"""Notifications: the notifier that reads ``cx.alerts``, the webhook, Slack and e-mail senders,
and the routing file that says which alert goes where.

May import: ``cxstream.core``, ``cxstream.config``, ``cxstream.kafka``, ``cxstream.metrics``.
Never ``cxstream.tools``, ``cxstream.worker`` or ``cxstream.api``.
"""
