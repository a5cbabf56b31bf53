package event

// Alert is the payload of an alert event: a security rule matched an event.
// The alert event carries the process and container of the event it was
// raised for; the whole triggering event is nested under "event".
type Alert struct {
	Rule     string
	Severity string // info, low, medium, high or critical
	Message  string // the rule's output template, filled in
	Tags     []string
	Event    *Event // the event the rule matched
}

// WriteFields implements Payload.
func (p *Alert) WriteFields(w FieldWriter) {
	w.String("rule", p.Rule)
	w.String("severity", p.Severity)
	w.String("message", p.Message)
	w.Strings("tags", p.Tags)
	w.Event("event", p.Event)
}
