//! One behaviour suite for the store, run on SQLite and on PostgreSQL (design rule 12).

mod harness;
mod suite;

harness::backend_tests!(
    migrations_from_empty_and_again_are_a_no_op,
    concurrent_first_migrations_apply_once,
    inbox_deduplicates_on_insert,
    inbox_claims_with_lease_retries_and_dead_letters,
    inbox_admin_retry_replay_and_lease_sweep,
    runs_are_created_in_one_transaction_and_read_back,
    job_status_writes_go_through_the_state_machine,
    concurrent_writers_cannot_both_move_a_job,
    run_status_follows_the_spec,
    steps_move_forward_only,
    queue_is_fifo_and_routes_by_labels,
    queue_pages_past_unmatched_rows,
    ack_deadline_requeue_and_attempt_budget,
    recovery_moves_the_queue_row,
    queue_depth_limit_and_expiry,
    push_claim_is_compare_and_set,
    concurrent_claimers_never_claim_a_job_twice,
    tokens_are_stored_hashed,
    step_logs_deduplicate_and_read_from_offsets,
);
