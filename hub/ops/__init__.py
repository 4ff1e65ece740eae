"""What the ops commands read and change: tasks, shipments, dead letters, alerts, customers."""
