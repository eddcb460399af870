-- v1 schema (orchestrator.md §21). Ids TEXT (UUID v4), timestamps BIGINT Unix ms, JSON as TEXT.
-- Append-only: a released migration is never edited; changes go into a new file.

CREATE TABLE cluster_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE leader_lease (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    epoch      BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);

-- §3.1
CREATE TABLE webhook_inbox (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    routing_key     TEXT NOT NULL,
    source_id       TEXT,
    delivery_id     TEXT NOT NULL,
    ingress         TEXT NOT NULL,
    provider        TEXT NOT NULL,
    event           TEXT NOT NULL,
    action          TEXT,
    headers         TEXT NOT NULL DEFAULT '{}',
    body            BYTEA,
    body_ref        TEXT,
    body_sha256     TEXT NOT NULL,
    body_size       BIGINT NOT NULL,
    received_at     BIGINT NOT NULL,
    status          TEXT NOT NULL DEFAULT 'pending',
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    lease_owner     TEXT,
    lease_until     BIGINT,
    last_error      TEXT,
    outcome         TEXT,
    decisions       TEXT,
    run_ids         TEXT,
    processed_at    BIGINT,
    UNIQUE (routing_key, delivery_id)
);
CREATE INDEX webhook_inbox_status_next ON webhook_inbox (status, next_attempt_at);
CREATE INDEX webhook_inbox_received ON webhook_inbox (received_at);

-- §4.3
CREATE TABLE sources (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL,
    name        TEXT NOT NULL,
    type        TEXT NOT NULL,
    routing_key TEXT NOT NULL UNIQUE,
    enabled     BOOLEAN NOT NULL DEFAULT TRUE,
    config      TEXT NOT NULL DEFAULT '{}',
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    deleted_at  BIGINT
);
CREATE UNIQUE INDEX sources_org_name ON sources (org_id, name) WHERE deleted_at IS NULL;

-- §8
CREATE TABLE workflow_registrations (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    routing_key     TEXT NOT NULL,
    repo_identifier TEXT NOT NULL,
    workflow_name   TEXT NOT NULL,
    lock_entry      TEXT NOT NULL,
    trigger_types   TEXT NOT NULL,
    commit_sha      TEXT NOT NULL,
    source_file     TEXT,
    disabled        BOOLEAN NOT NULL DEFAULT FALSE,
    received_at     BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (routing_key, repo_identifier, workflow_name)
);

CREATE TABLE registry_versions (
    org_id  TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);

CREATE TABLE cron_last_fired (
    registration_id TEXT NOT NULL,
    trigger_index   BIGINT NOT NULL,
    last_fired_at   BIGINT NOT NULL,
    PRIMARY KEY (registration_id, trigger_index)
);

-- §21
CREATE TABLE execution_runs (
    run_id              TEXT PRIMARY KEY,
    org_id              TEXT NOT NULL,
    inbox_id            TEXT,
    dispatch_key        TEXT,
    workflow_name       TEXT NOT NULL,
    status              TEXT NOT NULL,
    provider            TEXT NOT NULL,
    routing_key         TEXT NOT NULL,
    repo_identifier     TEXT NOT NULL,
    ref                 TEXT NOT NULL,
    sha                 TEXT NOT NULL,
    event               TEXT NOT NULL,
    decision            TEXT,
    matched_trigger     TEXT,
    trust_tier          TEXT NOT NULL,
    concurrency         TEXT,
    workflow_timeout_ms BIGINT,
    is_test_run         BOOLEAN NOT NULL DEFAULT FALSE,
    parent_run_id       TEXT,
    triggered_by        TEXT,
    cancelled_by        TEXT,
    failure_reason      TEXT,
    init_failure        TEXT,
    created_at          BIGINT NOT NULL,
    started_at          BIGINT,
    completed_at        BIGINT,
    duration_ms         BIGINT,
    log_bytes           BIGINT NOT NULL DEFAULT 0,
    UNIQUE (inbox_id, dispatch_key)
);
CREATE INDEX execution_runs_created ON execution_runs (created_at, run_id);
CREATE INDEX execution_runs_status ON execution_runs (status);

CREATE TABLE execution_jobs (
    job_id            TEXT PRIMARY KEY,
    run_id            TEXT NOT NULL REFERENCES execution_runs (run_id) ON DELETE CASCADE,
    job_name          TEXT NOT NULL,
    base_job_name     TEXT NOT NULL,
    variant_kind      TEXT,
    matrix_values     TEXT,
    status            TEXT NOT NULL,
    job_config        TEXT NOT NULL,
    environments      TEXT,
    runs_on           TEXT,
    agent_id          TEXT,
    dispatch_attempts BIGINT NOT NULL DEFAULT 0,
    needs_satisfied   BOOLEAN NOT NULL DEFAULT FALSE,
    wave_gated        BOOLEAN NOT NULL DEFAULT FALSE,
    skip_reason       TEXT,
    error_message     TEXT,
    init_failure      TEXT,
    outputs           TEXT,
    last_heartbeat_at BIGINT,
    created_at        BIGINT NOT NULL,
    started_at        BIGINT,
    completed_at      BIGINT,
    duration_ms       BIGINT,
    log_bytes         BIGINT NOT NULL DEFAULT 0,
    job_order         BIGINT NOT NULL,
    UNIQUE (run_id, job_name)
);
CREATE INDEX execution_jobs_status ON execution_jobs (status);

CREATE TABLE execution_steps (
    run_id           TEXT NOT NULL,
    job_id           TEXT NOT NULL REFERENCES execution_jobs (job_id) ON DELETE CASCADE,
    step_index       BIGINT NOT NULL,
    step_name        TEXT NOT NULL,
    step_type        TEXT,
    status           TEXT NOT NULL,
    concurrency_kind TEXT,
    group_id         TEXT,
    attempts         BIGINT,
    exit_code        BIGINT,
    error_message    TEXT,
    secrets_accessed TEXT,
    log_bytes        BIGINT NOT NULL DEFAULT 0,
    started_at       BIGINT,
    completed_at     BIGINT,
    duration_ms      BIGINT,
    PRIMARY KEY (job_id, step_index)
);

CREATE TABLE execution_job_needs (
    run_id        TEXT NOT NULL REFERENCES execution_runs (run_id) ON DELETE CASCADE,
    job_name      TEXT NOT NULL,
    upstream_name TEXT NOT NULL,
    run_on        TEXT NOT NULL DEFAULT '["success"]',
    PRIMARY KEY (run_id, job_name, upstream_name)
);
CREATE INDEX execution_job_needs_upstream ON execution_job_needs (run_id, upstream_name);

-- §9.1. `seq` breaks ties between rows created in the same millisecond (FIFO).
CREATE TABLE dispatch_queue (
    id                TEXT PRIMARY KEY REFERENCES execution_jobs (job_id) ON DELETE CASCADE,
    seq               BIGINT GENERATED ALWAYS AS IDENTITY UNIQUE,
    run_id            TEXT NOT NULL,
    org_id            TEXT NOT NULL,
    workflow_name     TEXT NOT NULL,
    job_name          TEXT NOT NULL,
    status            TEXT NOT NULL,
    pinned_agent_id   TEXT,
    patterns          TEXT,
    created_at        BIGINT NOT NULL,
    expires_at        BIGINT,
    agent_id          TEXT,
    dispatched_at     BIGINT,
    ack_deadline      BIGINT,
    ack_agent_id      TEXT,
    recovery_deadline BIGINT,
    recovery_agent_id TEXT,
    dispatch_attempts BIGINT NOT NULL DEFAULT 0,
    last_error        TEXT,
    request_id        TEXT
);
CREATE INDEX dispatch_queue_pending ON dispatch_queue (created_at, seq) WHERE status = 'pending';
CREATE INDEX dispatch_queue_pinned ON dispatch_queue (pinned_agent_id, created_at, seq)
    WHERE status = 'pending' AND pinned_agent_id IS NOT NULL;
CREATE INDEX dispatch_queue_status ON dispatch_queue (status);
CREATE INDEX dispatch_queue_ack ON dispatch_queue (ack_deadline) WHERE ack_deadline IS NOT NULL;

CREATE TABLE dispatch_queue_labels (
    queue_id TEXT NOT NULL REFERENCES dispatch_queue (id) ON DELETE CASCADE,
    kind     TEXT NOT NULL,
    label    TEXT NOT NULL,
    PRIMARY KEY (queue_id, kind, label)
);
CREATE INDEX dispatch_queue_labels_kind_label ON dispatch_queue_labels (kind, label);

-- §11
CREATE TABLE concurrency_groups (
    id           TEXT PRIMARY KEY,
    org_id       TEXT NOT NULL,
    scope_key    TEXT NOT NULL,
    run_id       TEXT NOT NULL,
    job_id       TEXT,
    status       TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX concurrency_groups_scope ON concurrency_groups (scope_key, status);

-- §14
CREATE TABLE environments (
    id                   TEXT PRIMARY KEY,
    org_id               TEXT NOT NULL,
    name                 TEXT NOT NULL,
    type                 TEXT NOT NULL,
    enabled              BOOLEAN NOT NULL DEFAULT TRUE,
    branch_restrictions  TEXT,
    trigger_type_filters TEXT,
    repo_patterns        TEXT,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE environment_variables (
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    key            TEXT NOT NULL,
    value          TEXT NOT NULL,
    locked         BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (environment_id, key)
);

CREATE TABLE environment_bindings (
    id             TEXT PRIMARY KEY,
    environment_id TEXT NOT NULL REFERENCES environments (id) ON DELETE CASCADE,
    scope_pattern  TEXT NOT NULL
);

-- §15
CREATE TABLE scoped_secrets (
    id              TEXT PRIMARY KEY,
    org_id          TEXT NOT NULL,
    scope           TEXT NOT NULL,
    key             TEXT NOT NULL,
    encrypted_value TEXT NOT NULL,
    key_version     BIGINT NOT NULL DEFAULT 1,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    UNIQUE (org_id, scope, key)
);

CREATE TABLE secret_audit_log (
    id         TEXT PRIMARY KEY,
    org_id     TEXT NOT NULL,
    action     TEXT NOT NULL,
    scope      TEXT,
    keys       TEXT,
    actor      TEXT,
    run_id     TEXT,
    job_id     TEXT,
    created_at BIGINT NOT NULL
);

-- §16
CREATE TABLE check_run_tracking (
    provider     TEXT NOT NULL,
    owner        TEXT NOT NULL,
    repo         TEXT NOT NULL,
    sha          TEXT NOT NULL,
    check_name   TEXT NOT NULL,
    check_run_id TEXT NOT NULL,
    run_id       TEXT,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (provider, owner, repo, sha, check_name)
);

-- §18.1: only SHA-256 hashes of tokens are stored.
CREATE TABLE admin_tokens (
    id           TEXT PRIMARY KEY,
    label        TEXT NOT NULL,
    role         TEXT NOT NULL,
    token_hash   TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);

CREATE TABLE agent_tokens (
    id               TEXT PRIMARY KEY,
    label            TEXT,
    token_hash       TEXT NOT NULL UNIQUE,
    token_prefix     TEXT NOT NULL,
    labels           TEXT,
    mandatory_labels TEXT NOT NULL DEFAULT '[]',
    privileged_root  BOOLEAN NOT NULL DEFAULT FALSE,
    agent_type       TEXT NOT NULL DEFAULT 'static',
    bound_agent_id   TEXT,
    max_uses         BIGINT,
    uses             BIGINT NOT NULL DEFAULT 0,
    created_at       BIGINT NOT NULL,
    expires_at       BIGINT,
    revoked_at       BIGINT,
    last_seen_at     BIGINT
);

CREATE TABLE agent_instances (
    agent_id         TEXT NOT NULL,
    instance_id      TEXT NOT NULL,
    last_applied_seq BIGINT NOT NULL DEFAULT 0,
    connected_node   TEXT,
    first_seen_at    BIGINT NOT NULL,
    last_seen_at     BIGINT NOT NULL,
    PRIMARY KEY (agent_id, instance_id)
);

-- §17 (ours: in the database). One row per log chunk; (job, step, seq) makes a resent
-- chunk a no-op; first_line numbers the lines of a step for offset reads.
CREATE TABLE step_log_chunks (
    run_id     TEXT NOT NULL,
    job_id     TEXT NOT NULL,
    step_index BIGINT NOT NULL,
    seq        BIGINT NOT NULL,
    first_line BIGINT NOT NULL,
    line_count BIGINT NOT NULL,
    ts         BIGINT NOT NULL,
    lines      TEXT NOT NULL,
    bytes      BIGINT NOT NULL,
    PRIMARY KEY (job_id, step_index, seq),
    UNIQUE (job_id, step_index, first_line)
);
