//! Orchestrator behaviour, on SQLite and on PostgreSQL: webhook ingress, the inbox
//! processor, and the server's start and shutdown.

mod agents;
mod api;
mod harness;
mod server;
mod sources;
mod suite;

harness::backend_tests!(
    probes_answer_and_metrics_count,
    signed_push_creates_runs_with_matrix_and_needs,
    changed_files_are_computed_only_for_paths_filters,
    refused_deliveries_store_nothing,
    redelivery_answers_duplicate_and_starts_nothing,
    lock_fetch_errors_are_retried_then_succeed,
    lock_fetch_always_failing_dead_letters,
    commit_without_lock_is_no_lock,
);
