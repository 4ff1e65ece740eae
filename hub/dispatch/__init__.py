"""Notification dispatch: pending notices reach customers through their channel (one module per
channel: email.py, webhook.py, gateway.py; phone becomes a call-back task), every try recorded.
The decisions (what a result means, when to try again, quiet hours, supersession) are pure, in
hub/core/dispatch.py; dispatcher.py claims, sends and records."""
