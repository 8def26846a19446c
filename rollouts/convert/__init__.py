"""``sluice convert``: Argo Rollouts and Flagger manifests to Sluice manifests.

Every input field is either translated or named in the report with the reason it was not: the
readers in :mod:`rollouts.convert.fields` track which keys a translator looked at, and whatever
nobody looked at is reported as unknown, so nothing is ever dropped silently.
"""

from rollouts.convert.convert import Conversion, convert_documents
from rollouts.convert.report import Note

__all__ = ["Conversion", "Note", "convert_documents"]
