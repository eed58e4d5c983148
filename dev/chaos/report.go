package chaos

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"hires/internal/jobs"
)

// maxListed bounds the violations printed per invariant.
const maxListed = 10

// Passed reports whether every invariant held.
func (r *Report) Passed() bool { return len(r.Violations) == 0 }

// Print writes the summary: counts, then each invariant's verdict.
func (r *Report) Print(w io.Writer) {
	t := r.Timings
	fmt.Fprintf(w, "\nchaos run (Temporal: %s): %d jobs and %d parked, seed %d, %s (setup %s, parking %s, traffic and faults %s, settling %s, checks %s)\n",
		r.mode(), r.Jobs, r.Parked, r.Seed, round(t.Total), round(t.Setup), round(t.Park), round(t.Traffic), round(t.Settle), round(t.Check))
	st, b := r.Settings, r.Behavior
	fmt.Fprintf(w, "PAYMENT_TIMEOUT %s, ASYNC_PAYMENT_TIMEOUT %s, PROCESSING_TIMEOUT %s, UPSAMPLER_POLL_INTERVAL %s, UPSAMPLER_LOST_ANSWER_WAIT %s,\n"+
		"REFUND_RETRY_INTERVAL %s, REFUND_ATTENTION_AFTER %s, RECONCILE_INTERVAL %s; stand-in fails %.0f%% of jobs, is slow (%s) for %.0f%% of the others,\n"+
		"loses the first answer for %.0f%% of the images; deadlines allow %s of slack\n",
		st.PaymentTimeout, st.AsyncPayment, st.ProcessingTimeout, st.PollInterval, st.LostAnswerWait,
		st.RefundRetry, st.RefundAttention, st.ReconcileInterval, b.FailRate*100, b.SlowDelay, b.SlowRate*100,
		b.LoseAnswerRate*100, Slack)
	r.printJobs(w)
	r.printActs(w)
	r.printCounts(w)
	r.printHistories(w)
	r.printFaults(w)
	r.printInvariants(w)
}

// printJobs is the table of jobs by payment path and end status.
func (r *Report) printJobs(w io.Writer) {
	fmt.Fprintln(w, "\nJobs by payment path and end status")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tplanned\tcreated\tpaid\tcompleted\tfailed\tabandoned\tnot final\trefunded\tsubmitted\t")
	for _, p := range append(slices.Clone(Paths), "all") {
		row := make([]int, 9)
		for _, o := range r.Observed {
			if p != "all" && o.Plan.Path != p {
				continue
			}
			row[0]++
			if o.JobID == "" {
				continue
			}
			row[1]++
			if o.Paid() {
				row[2]++
			}
			switch o.Status {
			case jobs.StatusCompleted:
				row[3]++
			case jobs.StatusFailed:
				row[4]++
			case jobs.StatusAbandoned:
				row[5]++
			default:
				row[6]++
			}
			if o.PaymentStatus == jobs.PaymentRefunded {
				row[7]++
			}
			if o.Submissions > 0 {
				row[8]++
			}
		}
		if row[0] > 0 || p == "all" {
			fmt.Fprintf(tw, "%s\t%s\t\n", p, joinInts(row, "\t"))
		}
	}
	tw.Flush()
	reasons := map[string]int{}
	for _, o := range r.Observed {
		if o.FailureReason != "" {
			reasons[o.FailureReason]++
		}
	}
	fmt.Fprintf(w, "failure reasons: %s\n", countsOf(reasons))
}

// printActs is the table of terminations, cancellations and refunds
// refused, with what became of the jobs.
func (r *Report) printActs(w io.Writer) {
	fmt.Fprintln(w, "\nAdmins and Stripe: acts planned, done, and how the jobs ended")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  act\tplanned\tdone\tmissed\tended (status/payment: jobs)")
	for _, a := range Acts {
		planned, done, missed := 0, 0, 0
		ends := map[string]int{}
		for _, o := range r.Observed {
			if o.Plan.Act != a {
				continue
			}
			planned++
			switch {
			case o.ActedAt != nil:
				done++
				end := string(o.Status) + "/" + string(o.PaymentStatus)
				if o.FailureReason != "" {
					end += " (" + o.FailureReason + ")"
				}
				ends[end]++
			case o.ActMissed != "":
				missed++
			}
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%d\t%s\n", a, planned, done, missed, countsOf(ends))
	}
	tw.Flush()
	hand, settledByAdmin, attention := 0, 0, 0
	for _, o := range r.Observed {
		if o.HandRefundAt != nil {
			hand++
		}
		if o.NeedsAttention {
			attention++
		}
		if o.SettledByAdmin {
			settledByAdmin++
		}
	}
	a := r.Awaiting
	fmt.Fprintf(w, "refused refunds: %d refunded by hand in the Dashboard (charge.refunded), %d reached refund_needs_attention, %d settled by an admin (%d POST refund-settled)\n",
		hand, attention, settledByAdmin, r.Drive.SettleCalls)
	stopped := 0
	for _, o := range r.Observed {
		if o.Plan.Path == PathParked && o.Plan.Act != ActNone {
			stopped++
		}
	}
	fmt.Fprintf(w, "parked: %d jobs created in %s before the traffic (%d left parked, %d for the admins to stop); at the %d terminations\n"+
		"and cancellations of paid jobs, %d to %d jobs were awaiting payment with their workflows running, at least %d of them parked\n",
		r.Drive.Parked, round(r.Drive.ParkTook), r.Drive.Parked-stopped, stopped, a.Stops, a.Min, a.Max, a.MinParked)
}

func (r *Report) printCounts(w io.Writer) {
	d := r.Drive
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "site\t%d creation requests; %d retried with the same Idempotency-Key (failed answers: %s)\n",
		d.CreateRequests, d.CreateRetries, statusCounts(d.CreateFailures))
	fmt.Fprintf(tw, "stripe events\t%d events, each delivered %d times concurrently with jitter: %d deliveries, %d retried (failed answers: %s)\n",
		d.EventsSent, Copies, d.Deliveries, d.DeliveryRetry, statusCounts(d.DeliveryFailed))
	fmt.Fprintf(tw, "\tanswers: %s; %d expiries after a payment, %d payments after abandonment\n",
		countsOf(d.Outcomes), d.StaleExpiries, d.LatePayments)
	fmt.Fprintf(tw, "refunds\t%d POST /v1/refunds at the Stripe double: %d created, %d replayed by idempotency key, %d refused, %d failed\n",
		r.Refunds.Calls, r.Refunds.Created, r.Refunds.Replayed, r.Refunds.Refused, r.Refunds.Failed)
	subs, twice, unnumbered := 0, 0, 0
	for _, o := range r.Observed {
		subs += o.Submissions
		if o.Submissions > 1 {
			twice++
		}
		for _, s := range o.Sends {
			if s.N == 0 {
				unnumbered++
			}
		}
	}
	fmt.Fprintf(tw, "upsampler\t%d jobs at the stand-in (%d failed, %d slow by seeded fate); %d hires jobs sent more than once; %d unnumbered\n",
		r.StandIn.Jobs, r.StandIn.Failed, r.StandIn.Slow, twice, unnumbered)
	l := r.Lost
	fmt.Fprintf(tw, "lost answers\t%d submissions accepted and their answer lost (%d answered 502, %d dropped): %d recovered by their callback, %d sent again without one, %d neither (job stopped)\n",
		l.Lost, l.As502, l.Dropped, l.Recovered, l.SentAgain, l.Other)
	fmt.Fprintf(tw, "\t%d waits for a lost answer's callback in the histories, of %s to %s (UPSAMPLER_LOST_ANSWER_WAIT %s)\n",
		l.Waits, round(l.MinWait), round(l.MaxWait), r.Settings.LostAnswerWait)
	fmt.Fprintf(tw, "deadlines\t%d steps (abandonment, result, refund) came after deadline + slack, the latest by %s; stuck jobs are violations\n",
		r.Late.Steps, round(r.Late.Worst))
	fmt.Fprintf(tw, "emails\t%d messages; customers got %s; %d repeated with the same Message-ID\n",
		r.Mail.Messages, countsOf(r.Mail.ByKind), r.Mail.Resent)
	fmt.Fprintf(tw, "events\t%d deliveries accepted, %d distinct events (%s); %d redelivered; %d first deliveries refused and retried\n",
		r.Events.Accepted, r.Events.Distinct, countsOf(r.Events.ByType), r.Events.Redelivered, r.EventsRefused)
	var procs []string
	for _, s := range r.Services {
		procs = append(procs, fmt.Sprintf("%s started %d times (%d exits on its own)", s.Name, s.Starts, s.SelfExits))
	}
	fmt.Fprintf(tw, "processes\t%s\n", strings.Join(procs, ", "))
	tw.Flush()
}

// printHistories states the bounds, how they were computed, and the
// longest histories seen.
func (r *Report) printHistories(w io.Writer) {
	b := r.Bounds
	fmt.Fprintf(w, "\nWorkflow histories (%d read with DescribeWorkflowExecution)\n", r.Histories.Described)
	fmt.Fprintf(w, "  bound job:          %d = %d fixed + %d polls×%d + %d resends×%d + %d refund attempts×%d + %d signals×%d + %d faults×%d\n",
		b.Job, eventsFixed, b.Polls, eventsPerPoll, b.Resends, eventsPerResend, b.RefundAttempts, eventsPerRefundAttempt,
		b.Signals, eventsPerSignal, b.Faults, eventsPerFault)
	fmt.Fprintf(w, "  bound owed-refund:  %d; late-payment: %d (%d refund attempts×%d each, plus their fixed steps, signals and faults)\n",
		b.OwedRefund, b.LatePayment, b.RefundAttempts, eventsPerRefundAttempt)
	for _, k := range []string{HistoryJob, HistoryOwedRefund, HistoryLatePayment} {
		h, ok := r.Histories.Longest[k]
		if !ok {
			fmt.Fprintf(w, "  longest %-13s none\n", k+":")
			continue
		}
		what := string(h.Path)
		if h.Act != ActNone {
			what += ", " + string(h.Act)
		}
		fmt.Fprintf(w, "  longest %-13s %d events (%.0f%% of its bound), %s, %s (%s)\n",
			k+":", h.Length, 100*float64(h.Length)/float64(max(b.For(k), 1)), h.WorkflowID, strings.ToLower(h.Status), what)
		if m := r.LongestMakeup[k]; m != "" {
			fmt.Fprintf(w, "    %s\n", m)
		}
	}
}

// mode is the run's mode, the dev server unless named.
func (r *Report) mode() Mode {
	if r.Mode == "" {
		return ModeDevServer
	}
	return r.Mode
}

func (r *Report) printFaults(w io.Writer) {
	fmt.Fprintf(w, "\nFaults injected (Temporal: %s)\n", r.mode())
	byKind := map[FaultKind][]FaultRecord{}
	for _, f := range r.Faults {
		byKind[f.Kind] = append(byKind[f.Kind], f)
	}
	kinds := slices.Clone(r.mode().FaultKinds())
	for _, f := range r.Faults {
		if !slices.Contains(kinds, f.Kind) {
			kinds = append(kinds, f.Kind)
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	for _, k := range kinds {
		var at []string
		for _, f := range byKind[k] {
			s := fmt.Sprintf("at %s (back in %s)", round(f.Started), round(f.Took))
			if f.Err != nil {
				s += " error: " + f.Err.Error()
			}
			at = append(at, s)
		}
		if len(at) == 0 {
			at = []string{"-"}
		}
		fmt.Fprintf(tw, "  %s\t×%d\t%s\n", k, len(byKind[k]), strings.Join(at, ", "))
	}
	tw.Flush()
}

func (r *Report) printInvariants(w io.Writer) {
	fmt.Fprintln(w, "\nInvariants")
	broken := Broken(r.Violations)
	for _, inv := range Invariants {
		vs := broken[inv]
		if len(vs) == 0 {
			fmt.Fprintf(w, "  ok    %s\n", inv)
			continue
		}
		fmt.Fprintf(w, "  FAIL  %s: %d violations\n", inv, len(vs))
		for i, v := range vs {
			if i == maxListed {
				fmt.Fprintf(w, "          ... and %d more\n", len(vs)-maxListed)
				break
			}
			fmt.Fprintf(w, "          - %s\n", v.String()[len(inv)+2:])
		}
	}
	if r.Passed() {
		fmt.Fprintln(w, "\nPASS: every invariant held")
	} else {
		fmt.Fprintf(w, "\nFAIL: %d violations of %d invariants (logs in %s)\n", len(r.Violations), len(broken), r.Dir)
	}
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

func joinInts(v []int, sep string) string {
	s := make([]string, len(v))
	for i, n := range v {
		s[i] = fmt.Sprint(n)
	}
	return strings.Join(s, sep)
}

// countsOf prints a map as "a 3, b 1", by key.
func countsOf(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// statusCounts prints HTTP status counts; 0 is "no answer".
func statusCounts(m map[int]int) string {
	named := map[string]int{}
	for k, v := range m {
		name := fmt.Sprint(k)
		if k == 0 {
			name = "no answer"
		}
		named[name] += v
	}
	return countsOf(named)
}
