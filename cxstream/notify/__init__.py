"""Notifications: the notifier that reads ``cx.alerts`` (its intake, which keeps polling while
deliveries wait, and the supervisor that restarts it), the webhook, Slack and e-mail
senders, and the routing file that says which alert goes where.

May import: ``cxstream.core``, ``cxstream.config``, ``cxstream.kafka``, ``cxstream.metrics``.
Never ``cxstream.tools``, ``cxstream.worker`` or ``cxstream.api``.
"""
