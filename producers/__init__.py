"""Typed publishers for carriers, warehouse systems and the call centre."""

from producers.feeds import CallCentreFeed, CarrierFeed, Delivered, DeliveryError, Feed, WarehouseFeed

__all__ = ["CallCentreFeed", "CarrierFeed", "Delivered", "DeliveryError", "Feed", "WarehouseFeed"]
