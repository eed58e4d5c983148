// Package historycost estimates what one workflow run costs on Temporal
// Cloud from its recorded event history: how many history events it wrote
// and how many billable Actions it consumed, itemised, so that a change to a
// workflow can be priced before it ships.
//
// The count follows Temporal Cloud's published definition of an Action,
// https://docs.temporal.io/cloud/actions (source:
// https://github.com/temporalio/documentation, docs/evaluate/cloud/actions.mdx),
// and, where that page leaves the mapping to history events open, the
// estimator that the Temporal Cloud UI shows next to each event
// (https://docs.temporal.io/cloud/actions-usage#actions-in-workflows; source:
// https://github.com/temporalio/ui, src/lib/models/event-history/get-event-billable-actions.ts).
// The docs call any count taken from history an estimate: some Actions leave
// no event. The rules, event by event:
//
// # Workflow
//
//   - WorkflowExecutionStarted: 1, whether by a client start, Continue-As-New,
//     a parent's child start or Signal-With-Start. A start made by a Schedule
//     (TemporalScheduledById search attribute, first run of the chain) is 3:
//     the start plus two for the Schedule. A start with attempt > 1 (a retry
//     of the workflow by its retry policy) is 0, as in the UI. De-duplicated
//     starts write no event and cost nothing.
//   - Update-with-Start ("Workflow started via Multi-Operation"): the start
//     is 1 and each bundled update that is accepted or rejected is 1 more,
//     so a start that carries one accepted update, as this service's job
//     start does, costs 2.
//   - StartChildWorkflowExecutionInitiated: 1 in the parent. The docs count
//     two Actions per child start; the second is the child's own
//     WorkflowExecutionStarted, which appears in the child's history.
//   - WorkflowExecutionContinuedAsNew: 0 here; it is billed as the next run's
//     WorkflowExecutionStarted ("The UI shows a billable action only for the
//     EVENT_TYPE_WORKFLOW_EXECUTION_STARTED event of the newly started
//     Workflow").
//   - UpsertWorkflowSearchAttributes: 1 per event, however many attributes it
//     sets, except one that only sets TemporalChangeVersion (written by
//     workflow.GetVersion), which the docs exempt. Search attributes given at
//     start are free.
//   - WorkflowPropertiesModified (workflow.UpsertMemo): 0; memo upserts are
//     not in the list of Actions.
//   - WorkflowExecutionOptionsUpdated: 1.
//   - WorkflowTaskFailed with cause ResetWorkflow: 1 (a reset).
//   - Completion, failure, timeout, termination and cancellation of the
//     workflow, and workflow tasks themselves: 0.
//   - WorkflowExecutionCancelRequested and
//     RequestCancelExternalWorkflowExecutionInitiated: 0; cancellation
//     requests are not Actions.
//
// # Activity
//
//   - ActivityTaskScheduled: 1 (the first attempt).
//   - ActivityTaskStarted: attempt-1, the retries. Intermediate attempts
//     write no events; the server records the attempt number on the one
//     Started event it writes. If the run ends while an activity is still
//     retrying, that event is never written and the retries go uncounted.
//   - Local activities leave MarkerRecorded events (marker name
//     LocalActivity, or core_local_activity in Core-based SDKs). "Temporal
//     Cloud counts all RecordMarkers from each Workflow Task as one action":
//     every billable marker of one workflow task (same
//     WorkflowTaskCompletedEventId) together costs 1. This includes the
//     SideEffect and MutableSideEffect markers (MutableSideEffect writes one
//     only when its value changes), which the docs once listed as "Side
//     Effect recorded" Actions.
//   - Version markers (GetVersion; core_patch in Core-based SDKs): 0. The
//     UI's estimator lists them as not billable, in line with the docs
//     exempting the TemporalChangeVersion upsert that GetVersion makes.
//   - WorkflowTaskCompleted: meteringMetadata.nonfirstLocalActivityExecutionAttempts,
//     capped at 100: local activity retries after a workflow task
//     heartbeat. A workflow task heartbeat itself is billed but cannot be
//     told apart in history and is not counted.
//   - Activity heartbeats that reach the server are billed (the SDK throttles
//     them to 80% of the heartbeat timeout) but are not in history, so this
//     count leaves them out; it is a lower bound for activities that
//     heartbeat.
//
// # Timer
//
//   - TimerStarted: 1, including timers the SDK starts for a timeout such as
//     workflow.AwaitWithTimeout.
//
// # Signal
//
//   - WorkflowExecutionSignaled: 1, from a client or another workflow. For
//     Signal-With-Start that starts the workflow the signal is event 2 and
//     the one Action is the start's, so that event is 0.
//   - SignalExternalWorkflowExecutionInitiated: 0 here; it is billed as the
//     receiver's WorkflowExecutionSignaled.
//
// # Query
//
//   - Queries are billed (1 per query the worker answers, the built-in
//     __temporal_workflow_metadata excepted) but never appear in history.
//
// # Update
//
//   - WorkflowExecutionUpdateAccepted: 1. WorkflowExecutionUpdateCompleted:
//     0. A rejected update is billed (1) but the docs note its
//     WorkflowExecutionUpdateRejected event "is never written to history";
//     if one appears it is counted. De-duplicated updates cost nothing.
//
// # Nexus
//
//   - NexusOperationScheduled and NexusOperationCancelRequested: 1 each.
package historycost
