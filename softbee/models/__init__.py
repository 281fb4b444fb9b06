"""Soft-Bee's tables. ``softbee.db.import_models`` imports every module here."""

from softbee.models.apiary import Apiary
from softbee.models.hive import Hive
from softbee.models.inspection import Inspection
from softbee.models.treatment import Treatment
from softbee.models.user import User

__all__ = ["Apiary", "Hive", "Inspection", "Treatment", "User"]
