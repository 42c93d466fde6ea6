-- A registry file as schema version 1 wrote it (sqlite3 dump), to test the upgrade from it.
BEGIN TRANSACTION;
CREATE TABLE metalearn_attempts (
	id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,
	name VARCHAR(255),
	kind VARCHAR(16) NOT NULL,
	parent_id INTEGER,
	experiment VARCHAR(255),
	algorithm VARCHAR(255),
	status VARCHAR(16) NOT NULL,
	config JSON,
	overrides JSON,
	command JSON,
	tags JSON,
	created_at DATETIME NOT NULL,
	started_at DATETIME,
	ended_at DATETIME,
	heartbeat_at DATETIME,
	lease_until DATETIME,
	host VARCHAR(255),
	pid INTEGER,
	git_commit VARCHAR(64),
	output_dir TEXT,
	ckpt_path TEXT,
	error TEXT,
	FOREIGN KEY(parent_id) REFERENCES metalearn_attempts (id) ON DELETE SET NULL
);
INSERT INTO "metalearn_attempts" VALUES(1,'reptile_amazon','train',NULL,'reptile_amazon','reptile','completed','{"seed": 1, "data": {"shots": 5}}','["experiment=reptile_amazon", "seed=1"]','["run.py", "experiment=reptile_amazon", "seed=1"]','["amazon"]','2026-11-30 10:54:15.294164','2026-11-30 10:54:15.294164','2026-11-30 10:54:15.310863','2026-11-30 10:54:15.294164',NULL,'h',1,NULL,'/logs/reptile_amazon/runs/x',NULL,NULL);
CREATE TABLE metalearn_meta (
	"key" VARCHAR(64) NOT NULL,
	value VARCHAR(255) NOT NULL,
	PRIMARY KEY ("key")
);
INSERT INTO "metalearn_meta" VALUES('schema_version','1');
CREATE TABLE metalearn_metrics (
	attempt_id INTEGER NOT NULL,
	name VARCHAR(255) NOT NULL,
	step INTEGER NOT NULL,
	value FLOAT,
	time FLOAT NOT NULL,
	PRIMARY KEY (attempt_id, name, step),
	FOREIGN KEY(attempt_id) REFERENCES metalearn_attempts (id) ON DELETE CASCADE
);
INSERT INTO "metalearn_metrics" VALUES(1,'val/acc',4,0.7,1700000000.0);
CREATE TABLE metalearn_test_results (
	attempt_id INTEGER NOT NULL,
	domain VARCHAR(255) NOT NULL,
	acc FLOAT,
	ci95 FLOAT,
	episodes INTEGER,
	shots INTEGER,
	queries INTEGER,
	PRIMARY KEY (attempt_id, domain),
	FOREIGN KEY(attempt_id) REFERENCES metalearn_attempts (id) ON DELETE CASCADE
);
INSERT INTO "metalearn_test_results" VALUES(1,'automotive',0.7,0.02,10,5,5);
CREATE INDEX ix_metalearn_attempts_status ON metalearn_attempts (status);
CREATE INDEX ix_metalearn_attempts_experiment ON metalearn_attempts (experiment);
DELETE FROM "sqlite_sequence";
INSERT INTO "sqlite_sequence" VALUES('metalearn_attempts',1);
COMMIT;
