"""Ingestion pipeline: raw audio collection -> primary track table + bad-tracks report."""

from kedro.pipeline import Pipeline, node, pipeline

from .nodes import build_track_table, probe_audio_files, select_candidate_tracks
from .splits import assign_folder_splits


def create_pipeline(**kwargs) -> Pipeline:
    return pipeline(
        [
            node(
                select_candidate_tracks,
                inputs=["raw_audio_collection", "params:ingestion"],
                outputs=["collection_candidate_tracks", "collection_rejected_tracks"],
                name="select_candidate_tracks",
            ),
            node(
                assign_folder_splits,
                inputs=[
                    "collection_candidate_tracks",
                    "collection_rejected_tracks",
                    "raw_audio_collection",
                    "params:ingestion",
                ],
                outputs=["candidate_tracks", "metadata_rejected_tracks"],
                name="assign_folder_splits",
            ),
            node(
                probe_audio_files,
                inputs=["candidate_tracks", "previous_probed_tracks", "params:ingestion"],
                outputs="probed_tracks",
                name="probe_audio_files",
            ),
            node(
                build_track_table,
                inputs=["probed_tracks", "metadata_rejected_tracks", "params:ingestion"],
                outputs=["tracks", "bad_tracks"],
                name="build_track_table",
            ),
        ]
    )
