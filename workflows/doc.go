// Package workflows holds dumpflow's deterministic orchestration: the
// Connector workflow and its partition loops. It does no I/O; activities are
// referenced through a nil *activities.Activities.
//
// # Driving a connector without dumpflow's CLI
//
// Everything starter does can be done with the temporal CLI or the Web UI:
//
//	workflow type   Connector         task queue  dumpflow
//	workflow id     connector-<name>
//	input           {"spec": <the connector spec as JSON>}   (ConnectorInput)
//	signal pause    no payload: every partition finishes its batch and waits
//	signal resume   no payload: paused and stopped partitions go on; a
//	                partition stopped on a poison record sends that record
//	                to the dead-letter topic and continues
//	update set-offsets  SetOffsets, e.g. {"to": "offset", "offset": 1200,
//	                "partitions": [0], "by": "alice"}: moves a paused
//	                connector's partitions (to earliest, latest, timestamp,
//	                offset or reset); forward moves are declared skips,
//	                backward ones rewinds
//	update update-spec  UpdateSpecRequest {"spec": {...}, "by": "alice"}:
//	                changes batch, concurrency, errors.tolerance and
//	                transforms at the next batch boundary
//	query spec      returns the spec with defaults filled in
//	query status    returns Status (JSON): per partition next offset, high
//	                watermark, lag, records, bytes, objects, dead letters,
//	                state and last error
//
// For example:
//
//	temporal workflow start --task-queue dumpflow --type Connector \
//	    --workflow-id connector-demo --input-file spec.json
//	temporal workflow query --workflow-id connector-demo --type status
//	temporal workflow signal --workflow-id connector-demo --name pause
//	temporal workflow update execute --workflow-id connector-demo \
//	    --name set-offsets --input '{"to": "earliest", "partitions": [0]}'
//
// where spec.json is {"spec": {...}}. Defaults are filled in by the
// workflow, so the spec may be as short as the examples in deploy/examples.
//
// # Visibility
//
// Started with the Keyword search attributes DumpflowConnector,
// DumpflowTopic, DumpflowSink and DumpflowState (SearchAttributes), a
// connector keeps DumpflowState at its worst partition state, and its
// current details (the Web UI, or the __temporal_workflow_metadata query)
// at a short per-partition table. A sharded connector's workflow (see
// Sharding) keeps DumpflowState at the worst state its shards report (each
// shard signals shard-state when its own changes) and its current details
// at a table of its shards; the shards carry none of the Dumpflow* search
// attributes, so filters and starter list see one workflow per connector.
//
// # Sharding
//
// One workflow's history takes every plan, write and commit of its
// partitions. At the defaults a connector records about 170 events per GB
// dumped (docs/benchmark.md), so one workflow dumping 1 GB/s would take
// about 170 events/s; this design keeps one workflow at or below about 20
// events/s, about 120 MB/s. A connector whose topic has more partitions
// than spec.partitionsPerWorkflow (32) when it starts therefore runs them
// in shard workflows: children connector-<name>/shard-<k> of its workflow,
// shard k taking partition p where p mod shards = k, each the Connector
// workflow over its share with its own loops, history and continue-as-new.
// At 1 GB/s over 256 partitions that is 8 shards of about 21 events/s each.
//
// The connector's own workflow (the root) then runs no loop. It starts the
// shards, forwards pause, resume and acknowledge-data-loss to them in the
// order sent (acknowledge-data-loss for one partition goes to its shard
// only), forwards the set-offsets and update-spec Updates (ForwardUpdate),
// answers status with the shards' workflow ids (ConnectorStatus merges
// them), and when cancelled cancels the shards and waits until each has
// finished its writes and committed its offsets. The shards are started
// with parent-close policy abandon, so the root's continue-as-new leaves
// them running; each root run starts any that is not running.
//
// # Group writes (MaxCompute)
//
// The MaxCompute tunnel limits each table to 500 upload sessions and 500
// blocks per 5 minutes and 75 commits per 15 seconds; a write per Kafka
// partition per flush cannot stay inside them at 256 partitions. Runs
// since the group-writes change write a loop's ranges of one flush as one
// group batch: one PrepareWrite and one WritePartition (their inputs'
// Group lists the members' ranges) into one session per destination
// partition, recorded by one ledger row (sink/maxcompute, "Group
// batches"). A group is fixed once prepared and written only whole, by
// the loop of its first member still pending; the other members' loops
// wait for it. groups.go has the rules for failures.
package workflows
