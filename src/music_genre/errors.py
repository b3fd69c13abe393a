"""The errors whose cause is the set-up a user chose, not a bug in the code.

A missing ImageNet weights file, a cut level the backbone does not have, a storage protocol whose
package is not installed, a Dask scheduler that does not answer: each message already names the
setting and the fix. ``kedro run`` shows such an error as that message alone
(:class:`music_genre.hooks.SetupErrorHook`), not under a page of traceback.
"""


class SetupError(Exception):
    """Base of the errors a user fixes in their set-up; the message says how."""


class CollectionError(SetupError, ValueError):
    """An audio collection the ingestion cannot use as configured (e.g. too few usable files
    per genre for ``ingestion.split_fractions``); the message says what to add or change."""
