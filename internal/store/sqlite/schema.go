package sqlite

// migrations are applied in order; migration i brings the schema to version
// i+1. Never edit or reorder a released entry: databases in the field already
// ran it. Append a new one instead.
//
// Times are INTEGER nanoseconds since the Unix epoch, UTC, so that expiry
// comparisons in the gate queries are plain integer comparisons.
var migrations = []string{
	// 1: the initial record.
	`
CREATE TABLE images (
	digest        TEXT PRIMARY KEY,
	media_type    TEXT NOT NULL,
	artifact_type TEXT NOT NULL DEFAULT '',
	size          INTEGER NOT NULL,
	state         TEXT NOT NULL CHECK (state IN ('quarantined', 'approved', 'rejected', 'revoked')),
	expires       INTEGER,
	subject       TEXT NOT NULL DEFAULT '',
	source        TEXT,
	created_at    INTEGER NOT NULL,
	updated_at    INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX images_state ON images (state, updated_at);

CREATE TABLE image_repos (
	repository TEXT NOT NULL,
	digest     TEXT NOT NULL REFERENCES images (digest),
	pushed_by  TEXT NOT NULL,
	at         INTEGER NOT NULL,
	PRIMARY KEY (repository, digest)
) WITHOUT ROWID;
CREATE INDEX image_repos_digest ON image_repos (digest);

-- Keyed by (repository, blob) first because BlobServable runs on every blob GET.
CREATE TABLE manifest_blobs (
	repository      TEXT NOT NULL,
	manifest_digest TEXT NOT NULL,
	blob_digest     TEXT NOT NULL,
	PRIMARY KEY (repository, blob_digest, manifest_digest),
	FOREIGN KEY (repository, manifest_digest) REFERENCES image_repos (repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX manifest_blobs_manifest ON manifest_blobs (repository, manifest_digest);

CREATE TABLE index_children (
	repository   TEXT NOT NULL,
	index_digest TEXT NOT NULL,
	child_digest TEXT NOT NULL,
	position     INTEGER NOT NULL,
	media_type   TEXT NOT NULL,
	platform     TEXT,
	PRIMARY KEY (repository, index_digest, child_digest),
	FOREIGN KEY (repository, index_digest) REFERENCES image_repos (repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;
-- The gate asks "is this manifest a child of an approved index in this repository?"
CREATE INDEX index_children_child ON index_children (repository, child_digest);
CREATE INDEX index_children_index ON index_children (index_digest);

CREATE TABLE referrers (
	repository    TEXT NOT NULL,
	digest        TEXT NOT NULL,
	subject       TEXT NOT NULL,
	media_type    TEXT NOT NULL,
	artifact_type TEXT NOT NULL DEFAULT '',
	size          INTEGER NOT NULL,
	annotations   TEXT,
	PRIMARY KEY (repository, digest),
	FOREIGN KEY (repository, digest) REFERENCES image_repos (repository, digest) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX referrers_subject ON referrers (repository, subject);

CREATE TABLE transitions (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	digest     TEXT NOT NULL REFERENCES images (digest),
	from_state TEXT NOT NULL,
	to_state   TEXT NOT NULL,
	actor      TEXT NOT NULL,
	reason     TEXT NOT NULL,
	at         INTEGER NOT NULL,
	expires    INTEGER
);
CREATE INDEX transitions_digest ON transitions (digest, id);

CREATE TABLE tokens (
	name       TEXT PRIMARY KEY,
	role       TEXT NOT NULL,
	hash       TEXT NOT NULL UNIQUE,
	created_by TEXT NOT NULL,
	created_at INTEGER NOT NULL,
	expires_at INTEGER,
	revoked    INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;

-- AUTOINCREMENT (not plain rowid) so sqlite_sequence remembers the highest seq
-- ever written, which lets VerifyAudit notice the newest rows being deleted.
CREATE TABLE audit (
	seq       INTEGER PRIMARY KEY AUTOINCREMENT,
	at        INTEGER NOT NULL,
	actor     TEXT NOT NULL,
	action    TEXT NOT NULL,
	subject   TEXT NOT NULL,
	detail    TEXT,
	prev_hash TEXT NOT NULL,
	hash      TEXT NOT NULL
);
CREATE INDEX audit_subject ON audit (subject, seq);
CREATE INDEX audit_action ON audit (action, seq);
`,
	// 2: imports (the documented source of each import) and the vetting job queue.
	`
CREATE TABLE imports (
	id              INTEGER PRIMARY KEY AUTOINCREMENT,
	digest          TEXT NOT NULL REFERENCES images (digest),
	reference       TEXT NOT NULL,
	normalized      TEXT NOT NULL,
	registry        TEXT NOT NULL DEFAULT '',
	transport       TEXT NOT NULL,
	repository      TEXT NOT NULL,
	tags            TEXT,
	platform        TEXT NOT NULL DEFAULT '',
	resolved_at     INTEGER NOT NULL,
	actor           TEXT NOT NULL,
	facts           TEXT,
	previous_digest TEXT NOT NULL DEFAULT '',
	tag_moved       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX imports_digest ON imports (digest, id);
-- RecordImport asks "what did this reference resolve to last time?"
CREATE INDEX imports_normalized ON imports (normalized, id);

-- stages is a JSON array of store.StageRun: a job's stages are read and
-- written together, always by the one worker holding the lease.
CREATE TABLE jobs (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	key         TEXT NOT NULL DEFAULT '',
	digest      TEXT NOT NULL DEFAULT '',
	repository  TEXT NOT NULL DEFAULT '',
	state       TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done', 'failed')),
	stages      TEXT NOT NULL,
	payload     TEXT,
	error       TEXT NOT NULL DEFAULT '',
	lease_owner TEXT NOT NULL DEFAULT '',
	lease_until INTEGER,
	not_before  INTEGER NOT NULL DEFAULT 0,
	created_at  INTEGER NOT NULL,
	updated_at  INTEGER NOT NULL
);
-- LeaseJob looks only at queued and running jobs, never the finished history.
CREATE INDEX jobs_state ON jobs (state, id);
CREATE INDEX jobs_digest ON jobs (digest, id);
-- At most one live job per key, whoever enqueues it.
CREATE UNIQUE INDEX jobs_live_key ON jobs (key) WHERE key <> '' AND state IN ('queued', 'running');
`,
	// 3: approvals (N distinct approvers) and the attestations signed on approval.
	`
CREATE TABLE approvals (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	digest  TEXT NOT NULL REFERENCES images (digest),
	actor   TEXT NOT NULL,
	reason  TEXT NOT NULL,
	at      INTEGER NOT NULL,
	expires INTEGER,
	outcome TEXT NOT NULL CHECK (outcome IN ('pending', 'approved', 'void')),
	policy  TEXT
);
CREATE INDEX approvals_digest ON approvals (digest, id);
-- One pending approval per approver: N approvals must come from N people.
CREATE UNIQUE INDEX approvals_pending ON approvals (digest, actor) WHERE outcome = 'pending';

CREATE TABLE attestations (
	repository     TEXT NOT NULL,
	manifest       TEXT NOT NULL,
	digest         TEXT NOT NULL REFERENCES images (digest),
	tag            TEXT NOT NULL,
	predicate_type TEXT NOT NULL,
	envelope       TEXT NOT NULL,
	key_id         TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	expires        INTEGER,
	revoked_at     INTEGER,
	revoked_by     TEXT NOT NULL DEFAULT '',
	revoke_reason  TEXT NOT NULL DEFAULT '',
	PRIMARY KEY (repository, manifest)
) WITHOUT ROWID;
CREATE INDEX attestations_digest ON attestations (digest, created_at);
`,
	// 4: re-evaluation against newer advisories, governed revocations with a
	// grace period, and waivers of single findings.
	`
CREATE TABLE reevaluations (
	id       INTEGER PRIMARY KEY AUTOINCREMENT,
	digest   TEXT NOT NULL REFERENCES images (digest),
	snapshot TEXT NOT NULL,
	at       INTEGER NOT NULL,
	state    TEXT NOT NULL,
	findings TEXT NOT NULL,
	new      TEXT NOT NULL,
	actor    TEXT NOT NULL
);
CREATE INDEX reevaluations_digest ON reevaluations (digest, id);

CREATE TABLE scheduled_revocations (
	id           INTEGER PRIMARY KEY AUTOINCREMENT,
	digest       TEXT NOT NULL REFERENCES images (digest),
	due          INTEGER NOT NULL,
	reason       TEXT NOT NULL,
	actor        TEXT NOT NULL,
	created_at   INTEGER NOT NULL,
	reevaluation INTEGER,
	status       TEXT NOT NULL CHECK (status IN ('scheduled', 'executed', 'cancelled')),
	closed_at    INTEGER,
	closed_by    TEXT NOT NULL DEFAULT '',
	close_reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX scheduled_revocations_due ON scheduled_revocations (status, due);
CREATE INDEX scheduled_revocations_digest ON scheduled_revocations (digest, id);
-- At most one open revocation per digest.
CREATE UNIQUE INDEX scheduled_revocations_open ON scheduled_revocations (digest) WHERE status = 'scheduled';

CREATE TABLE waivers (
	id             INTEGER PRIMARY KEY AUTOINCREMENT,
	digest         TEXT NOT NULL DEFAULT '',
	repository     TEXT NOT NULL DEFAULT '',
	finding        TEXT NOT NULL,
	package        TEXT NOT NULL DEFAULT '',
	owner          TEXT NOT NULL,
	reason         TEXT NOT NULL,
	expires        INTEGER NOT NULL,
	created_by     TEXT NOT NULL,
	created_at     INTEGER NOT NULL,
	revoked_at     INTEGER,
	revoked_by     TEXT NOT NULL DEFAULT '',
	revoke_reason  TEXT NOT NULL DEFAULT '',
	expiry_audited INTEGER NOT NULL DEFAULT 0,
	CHECK (digest <> '' OR repository <> '')
);
CREATE INDEX waivers_digest ON waivers (digest, id);
CREATE INDEX waivers_repository ON waivers (repository, id);
`,
	// lineage: images Airlock derived from others (hardened from original).
	`
CREATE TABLE lineage (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	original   TEXT NOT NULL REFERENCES images (digest),
	derived    TEXT NOT NULL REFERENCES images (digest),
	kind       TEXT NOT NULL,
	repository TEXT NOT NULL DEFAULT '',
	detail     TEXT,
	actor      TEXT NOT NULL DEFAULT '',
	created_at INTEGER NOT NULL,
	UNIQUE (original, derived, kind)
);
CREATE INDEX lineage_derived ON lineage (derived, id);
`,
}
