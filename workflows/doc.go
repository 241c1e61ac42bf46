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
// at a short per-partition table.
package workflows
