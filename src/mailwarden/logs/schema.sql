-- The mailwarden log index (DuckDB). One table per dataclass of logs/model.py, plus the
-- bookkeeping of what was loaded. Every column is documented in docs/log-index.md.
--
-- Keys: `source_id` numbers a loaded file; `session_id` (BIGINT) is
-- source_id * 10^12 + the line number of the session's first line, so ids are unique
-- within an index and sort in file order. The model's string id is
-- '<dialect>:<source path>:<first line no>' (see index.py, session_key()).
-- Timestamps: TIMESTAMP without zone. `ts_is_local = true`: server-local wall-clock time as
-- logged (classic syslog, MDaemon). `ts_is_local = false`: the log gave an offset and the
-- value was converted to UTC.
-- Statements are separated by ';' at line end; index.py runs them one by one.

CREATE TABLE IF NOT EXISTS meta (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR
);

CREATE TABLE IF NOT EXISTS sources (
    source_id    INTEGER PRIMARY KEY,
    path         VARCHAR NOT NULL,    -- absolute path when loaded (updated when a rotated copy is seen)
    size         BIGINT NOT NULL,     -- bytes of the (decompressed for .bz2/.xz, raw for .gz) file loaded
    fingerprint  VARCHAR NOT NULL,    -- sha256 of size + first 64 KiB + last 64 KiB
    head_hash    VARCHAR NOT NULL,    -- sha256 of the first 64 KiB only: recognises a file that grew
    dialect      VARCHAR NOT NULL,    -- postfix, exim, mdaemon
    loaded_at    TIMESTAMP NOT NULL,  -- UTC
    lines        BIGINT NOT NULL,     -- physical lines read
    unparsed     BIGINT NOT NULL,     -- lines not understood at all (no timestamp/prefix, binary junk)
    other        BIGINT NOT NULL DEFAULT 0,  -- well-formed lines of other programs (dovecot, amavis ...)
    year_assumed INTEGER,             -- year given to the first line of a year-less syslog file
    sessions     BIGINT NOT NULL DEFAULT 0
);

CREATE TABLE IF NOT EXISTS sessions (
    session_id    BIGINT NOT NULL,
    source_id     INTEGER NOT NULL,
    dialect       VARCHAR NOT NULL,
    source        VARCHAR NOT NULL,   -- path of the file, as in sources.path at load time
    kind          VARCHAR NOT NULL,   -- smtp, postscreen, local (pickup), queue (mail Postfix made: bounces)
    start_ts      TIMESTAMP,
    end_ts        TIMESTAMP,
    ts_is_local   BOOLEAN NOT NULL DEFAULT true,
    host          VARCHAR,            -- logging host (syslog hostname)
    service       VARCHAR,            -- e.g. postfix/submission/smtpd
    pid           INTEGER,
    client_ip     VARCHAR,
    client_port   INTEGER,
    client_name   VARCHAR,            -- reverse DNS as logged, NULL for "unknown"
    helo          VARCHAR,
    server_ip     VARCHAR,
    server_port   INTEGER,
    tls           BOOLEAN NOT NULL DEFAULT false,
    tls_info      VARCHAR,
    auth_user     VARCHAR,            -- last successful AUTH user
    auth_method   VARCHAR,
    auth_failures INTEGER NOT NULL DEFAULT 0,
    local_user    VARCHAR,            -- uid / user of a local injection
    trusted       BOOLEAN,            -- the log says the client was trusted; NULL = the log does not say
    outcome       VARCHAR,            -- disconnect, lost connection after DATA, timeout after RCPT ...
    commands      VARCHAR,            -- Postfix disconnect counters "ehlo=1 auth=1 mail=1 ..."
    first_lineno  BIGINT NOT NULL,
    last_lineno   BIGINT NOT NULL,
    n_lines       INTEGER NOT NULL DEFAULT 0,
    defects       VARCHAR[]
);

CREATE TABLE IF NOT EXISTS transactions (
    session_id     BIGINT,            -- NULL when the session is not in the log (log began mid-flight)
    source_id      INTEGER NOT NULL,
    txn_id         BIGINT NOT NULL,   -- source_id * 10^12 + line number of the transaction's first line
    -- Queue ids, Message-IDs and remote replies are all different, row after row: DuckDB's
    -- DICT_FSST finds no repeats to share in them and its FSST half gains about 2x for 3-4x the
    -- CPU of storing them as they are (1 GiB bench log: 1.0 s of the load for 60 MiB).
    queue_id       VARCHAR USING COMPRESSION uncompressed,
    message_id     VARCHAR USING COMPRESSION uncompressed,   -- without angle brackets, as logged
    sender         VARCHAR,           -- envelope sender ('' = null sender)
    size           BIGINT,
    accepted       BOOLEAN NOT NULL DEFAULT false,
    reject_reason  VARCHAR,
    subject        VARCHAR,
    start_ts       TIMESTAMP,
    end_ts         TIMESTAMP,
    spam_score     DOUBLE,
    spam_threshold DOUBLE,
    nrcpt          INTEGER,
    removed        BOOLEAN NOT NULL DEFAULT false   -- left the queue (qmgr removed / Completed)
);

CREATE TABLE IF NOT EXISTS recipients (
    session_id    BIGINT,
    source_id     INTEGER NOT NULL,
    txn_id        BIGINT NOT NULL,
    queue_id      VARCHAR USING COMPRESSION uncompressed,   -- all different: see transactions
    address       VARCHAR,
    orig_address  VARCHAR,
    status        VARCHAR,            -- sent, deferred, bounced, expired, ...
    relay         VARCHAR,
    dsn           VARCHAR,
    detail        VARCHAR USING COMPRESSION uncompressed,   -- the remote reply / reason in parentheses
    ts            TIMESTAMP,
    lineno        BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS auth_events (
    session_id  BIGINT,
    source_id   INTEGER NOT NULL,
    ts          TIMESTAMP,
    client_ip   VARCHAR,
    user        VARCHAR,              -- NULL when a failure does not name the user
    method      VARCHAR,
    ok          BOOLEAN NOT NULL,
    reason      VARCHAR,              -- failure reason as logged
    lineno      BIGINT NOT NULL
);

CREATE TABLE IF NOT EXISTS rejects (
    session_id  BIGINT,
    source_id   INTEGER NOT NULL,
    ts          TIMESTAMP,
    client_ip   VARCHAR,
    client_name VARCHAR,
    stage       VARCHAR,              -- CONNECT, EHLO, MAIL, RCPT, DATA, END-OF-MESSAGE, BDAT, VRFY
    action      VARCHAR,              -- reject, reject_warning, milter-reject, discard, proxy-reject ...
    queue_id    VARCHAR,              -- NULL for NOQUEUE
    code        VARCHAR,              -- SMTP reply code, e.g. 554
    dsn         VARCHAR,              -- enhanced status, e.g. 5.7.1
    reason      VARCHAR,
    sender      VARCHAR,
    recipient   VARCHAR,
    helo        VARCHAR,
    proto       VARCHAR,
    lineno      BIGINT NOT NULL
);

-- The raw text of every physical line of every loaded file (for transcripts and, through the
-- TEMP VIEW `lines` of linestore.register_lines_view, for `logs sql`); unparsed lines too.
-- One row per block: `data` is one zstd frame of the raw bytes of `n_lines` consecutive lines
-- from `first_lineno` on, each with its '\n' (the file's last line may lack it); about
-- 256 KiB of text per block, cut at line ends (logs/linestore.py).
CREATE TABLE IF NOT EXISTS line_blocks (
    source_id    INTEGER NOT NULL,
    first_lineno BIGINT NOT NULL,     -- 1-based physical line number of the block's first line
    n_lines      INTEGER NOT NULL,
    -- already zstd: DuckDB's own zstd on top (what it picks for large strings) gains nothing
    -- and makes fetching one block decompress the blocks before it in its vector (up to 90 ms)
    data         BLOB NOT NULL USING COMPRESSION uncompressed
);

-- Which lines make up each session's transcript (connection lines and the lines of its
-- transactions: cleanup, qmgr, deliveries), in file order.
CREATE TABLE IF NOT EXISTS session_lines (
    session_id  BIGINT NOT NULL,
    source_id   INTEGER NOT NULL,
    lineno      BIGINT NOT NULL
);

-- The look-up tables of find_sessions: which session logged a Message-ID / a queue id. Every
-- table above is stored in session order (transactions in txn_id order), so DuckDB's min/max
-- per row group find a session's rows; these two are sorted by their key within each loaded
-- file, so a look-up by key reads one row group of each file. Filled from the stored
-- transactions once a file is loaded (columnar_postfix.lookup_statement); transactions with no
-- session are not in them. They replace two ART indexes on transactions (schema 2): on the
-- 1 GiB bench log those cost 0.6-0.9 s of the load and 59 MiB, these about as much time
-- (0.55 s alone, 1.0-1.2 s beside the other inserts) and 30 MiB.
-- Message-IDs are all different and long: DuckDB's compression (DICT_FSST) of them took 0.5-0.65 s
-- of CPU for the 730 k of the 1 GiB bench log, 0.3 s without, for 12 MiB more (23.5 MiB).
CREATE TABLE IF NOT EXISTS message_ids (
    message_id  VARCHAR NOT NULL USING COMPRESSION uncompressed,   -- as in transactions.message_id
    session_id  BIGINT NOT NULL,
    source_id   INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS queue_ids (
    queue_id    VARCHAR NOT NULL USING COMPRESSION uncompressed,   -- as in transactions.queue_id
    session_id  BIGINT NOT NULL,
    source_id   INTEGER NOT NULL
);
