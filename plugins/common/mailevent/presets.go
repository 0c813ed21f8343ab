package mailevent

import (
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// Presets map each provider's events into the mailtick schema. The README
// has one table per provider; the tests decode the provider's published
// samples (testdata/providers) through each.
var presets = map[string]func() Mapping{
	"mailgun":            mailgun,
	"mailgun_events_api": mailgunEventsAPI,
	"ses":                ses,
	"ses_sns":            sesSNS,
	"sendgrid":           sendgrid,
	"postmark":           postmark,
	"sparkpost":          sparkpost,
	"mandrill":           mandrill,
}

// PresetNames lists the presets, sorted.
func PresetNames() []string { return slices.Sorted(maps.Keys(presets)) }

// smtpReply takes the reply code and the enhanced status code out of the
// text of an SMTP reply ("smtp; 550 5.1.1 user unknown"), where the
// provider gives only the text.
var smtpReply = Capture{
	Key:     "smtp_response",
	Pattern: `(?:^|[^\d.])(?P<smtp_code>[245]\d\d)(?:[ -]+(?P<smtp_status>[245]\.\d{1,3}\.\d{1,3}))?`,
}

// provider is what every preset shares: the mailer tag names the provider,
// the direction is outbound, times a provider gives to the second (or
// millisecond) are filled from the event's hash, and SMTP replies are read.
func provider(name string) Mapping {
	m := DefaultMapping()
	m.TimeFill = timeFillHash
	m.Captures = []Capture{smtpReply}
	m.ValueRules = []ValueRule{{Key: "mailer", Value: name}, {Key: "direction", Value: "outbound"}}
	return m
}

func mailgun() Mapping {
	m := provider("mailgun")
	m.EventsPath = "event-data"
	m.TimeKeys = []string{"timestamp"}
	m.Rename = map[string]string{
		"envelope.sender":               "sender",
		"envelope.sending-ip":           "sender_ip",
		"message.headers.message-id":    "message_id",
		"delivery-status.code":          "smtp_code",
		"delivery-status.enhanced-code": "smtp_status",
		"delivery-status.message":       "smtp_response",
		"delivery-status.attempt-no":    "attempt",
		"delivery-status.tls":           "tls",
		"delivery-status.mx-host":       "mx_host",
		"account.id":                    "customer",
		"reject.reason":                 "reject_reason",
		"reason":                        "provider_reason",
	}
	m.KeepKeys = []string{"severity", "reason"}
	m.ValueRules = append(m.ValueRules,
		ValueRule{Key: "event", When: map[string]string{"event": "failed", "severity": "temporary"}, Value: "deferred"},
		ValueRule{Key: "event", When: map[string]string{"event": "failed", "severity": "permanent"}, Value: "bounced"},
		ValueRule{Key: "direction", When: map[string]string{"event": "stored"}, Value: "inbound"},
		ValueRule{Key: "event", When: map[string]string{"event": "stored"}, Value: "accepted"},
	)
	return m
}

func mailgunEventsAPI() Mapping {
	m := mailgun()
	m.EventsPath = "items"
	return m
}

func ses() Mapping {
	m := provider("ses")
	m.Explode = []string{
		"bounce.bouncedRecipients", "complaint.complainedRecipients",
		"deliveryDelay.delayedRecipients", "delivery.recipients",
	}
	m.TimeKeys = []string{
		"bounce.timestamp", "complaint.timestamp", "delivery.timestamp", "deliveryDelay.timestamp",
		"open.timestamp", "click.timestamp", "subscription.timestamp", "mail.timestamp",
	}
	m.Rename = map[string]string{
		"eventType":                                      "event",
		"notificationType":                               "event",
		"mail.source":                                    "sender",
		"mail.sourceIp":                                  "sender_ip",
		"mail.tags.ses:source-ip":                        "sender_ip",
		"mail.messageId":                                 "message_id",
		"mail.destination[0]":                            "recipient",
		"mail.tags.ses:configuration-set":                "customer",
		"bounce.bouncedRecipients.emailAddress":          "recipient",
		"bounce.bouncedRecipients.status":                "smtp_status",
		"bounce.bouncedRecipients.diagnosticCode":        "smtp_response",
		"bounce.bounceType":                              "bounce_type",
		"bounce.bounceSubType":                           "bounce_subtype",
		"complaint.complainedRecipients.emailAddress":    "recipient",
		"complaint.complaintFeedbackType":                "complaint_type",
		"deliveryDelay.delayedRecipients.emailAddress":   "recipient",
		"deliveryDelay.delayedRecipients.status":         "smtp_status",
		"deliveryDelay.delayedRecipients.diagnosticCode": "smtp_response",
		"deliveryDelay.delayType":                        "delay_type",
		"delivery.recipients":                            "recipient",
		"delivery.smtpResponse":                          "smtp_response",
		"delivery.processingTimeMillis":                  "latency_ms",
		"reject.reason":                                  "reject_reason",
		"mail.sendingAccountId":                          "account_id",
	}
	// Deny by default: what no option above names is dropped.
	m.KeepKeys = []string{"mail.sendingAccountId"}
	m.ValueMaps = map[string]map[string]string{"event": {
		"Send": "accepted", "Delivery": "delivered", "DeliveryDelay": "deferred",
		"Bounce": "bounced", "Reject": "rejected", "Rendering Failure": "failed",
		"Open": "opened", "Click": "clicked", "Complaint": "complained",
		"Subscription": "unsubscribed",
	}}
	return m
}

func sesSNS() Mapping {
	m := ses()
	m.JSONKeys = []string{"Message"}
	m.EventsPath = "Message"
	return m
}

func sendgrid() Mapping {
	m := provider("sendgrid")
	m.TimeKeys = []string{"timestamp"}
	m.Rename = map[string]string{
		"email":         "recipient",
		"sg_message_id": "message_id",
		"response":      "smtp_response",
		"reason":        "smtp_response",
		"status":        "smtp_status",
		"category":      "customer",
		"category[0]":   "customer",
		"type":          "bounce_type",
		"pool.name":     "ip_pool",
	}
	m.KeepKeys = []string{"tls"}
	m.ValueMaps = map[string]map[string]string{"event": {
		"processed": "accepted", "open": "opened", "click": "clicked", "bounce": "bounced",
		"dropped": "rejected", "spamreport": "complained", "unsubscribe": "unsubscribed",
		"group_unsubscribe": "unsubscribed", "group_resubscribe": "resubscribed",
	}}
	return m
}

func postmark() Mapping {
	m := provider("postmark")
	m.TimeKeys = []string{"DeliveredAt", "BouncedAt", "ReceivedAt", "ChangedAt"}
	m.Rename = map[string]string{
		"RecordType":    "event",
		"Recipient":     "recipient",
		"Email":         "recipient",
		"From":          "sender",
		"MessageID":     "message_id",
		"Details":       "smtp_response",
		"Tag":           "customer",
		"Type":          "bounce_type",
		"MessageStream": "stream",
	}
	m.Rename["SuppressSending"] = "suppress_sending"
	m.KeepKeys = []string{"SuppressSending"}
	m.ValueMaps = map[string]map[string]string{"event": {
		"Delivery": "delivered", "Bounce": "bounced", "SpamComplaint": "complained",
		"Open": "opened", "Click": "clicked", "SubscriptionChange": "unsubscribed",
	}}
	m.ValueRules = append(m.ValueRules,
		ValueRule{Key: "event", When: map[string]string{"event": "bounced", "bounce_type": "Transient"}, Value: "deferred"},
		ValueRule{Key: "event", When: map[string]string{"event": "bounced", "bounce_type": "Unsubscribe"}, Value: "unsubscribed"},
		ValueRule{Key: "event", When: map[string]string{"event": "bounced", "bounce_type": "SpamComplaint"}, Value: "complained"},
		ValueRule{Key: "event", When: map[string]string{"event": "unsubscribed", "suppress_sending": "false"}, Value: "resubscribed"},
	)
	return m
}

func sparkpost() Mapping {
	m := provider("sparkpost")
	m.EventsPath = "msys.*_event"
	m.TimeKeys = []string{"timestamp"}
	m.Rename = map[string]string{
		"type":          "event",
		"rcpt_to":       "recipient",
		"raw_rcpt_to":   "recipient",
		"msg_from":      "sender",
		"sending_ip":    "sender_ip",
		"error_code":    "smtp_code",
		"raw_reason":    "smtp_response",
		"subaccount_id": "customer",
		"queue_time":    "latency_ms",
		"num_retries":   "attempt",
	}
	m.KeepKeys = []string{"bounce_class", "ip_pool"}
	m.FieldTypes = map[string]string{"bounce_class": "int"}
	m.ValueMaps = map[string]map[string]string{"event": {
		"injection": "accepted", "delivery": "delivered", "delay": "deferred",
		"bounce": "bounced", "out_of_band": "bounced", "policy_rejection": "rejected",
		"generation_rejection": "rejected", "generation_failure": "failed",
		"spam_complaint": "complained", "open": "opened", "initial_open": "opened",
		"amp_open": "opened", "amp_initial_open": "opened", "click": "clicked",
		"amp_click": "clicked", "list_unsubscribe": "unsubscribed", "link_unsubscribe": "unsubscribed",
	}}
	return m
}

func mandrill() Mapping {
	m := provider("mandrill")
	m.FormField = "mandrill_events"
	m.TimeKeys = []string{"ts"}
	m.Rename = map[string]string{
		"msg.email":              "recipient",
		"msg.sender":             "sender",
		"_id":                    "message_id",
		"msg.diag":               "smtp_response",
		"msg.subaccount":         "customer",
		"msg.bounce_description": "bounce_type",
		"msg.state":              "state",
	}
	m.KeepKeys = []string{"msg.template"}
	m.ValueMaps = map[string]map[string]string{"event": {
		"send": "delivered", "deferral": "deferred", "hard_bounce": "bounced",
		"soft_bounce": "bounced", "open": "opened", "click": "clicked",
		"spam": "complained", "unsub": "unsubscribed", "reject": "rejected",
	}}
	return m
}

// withPreset is the preset's mapping with the options written beside it
// laid over it: a single value replaces the preset's, a list adds to it
// (time_keys written beside a preset come first, as the first present
// wins), and a table merges key by key, yours winning.
func (m *Mapping) withPreset() (Mapping, error) {
	mk, ok := presets[m.Preset]
	if !ok {
		return Mapping{}, fmt.Errorf("invalid %q value %q: want one of %s", "preset", m.Preset, strings.Join(PresetNames(), ", "))
	}
	out := mk()
	def := DefaultMapping()
	ov, dv, uv := reflect.ValueOf(&out).Elem(), reflect.ValueOf(def), reflect.ValueOf(*m)
	for i := range uv.NumField() {
		u, d, o := uv.Field(i), dv.Field(i), ov.Field(i)
		if reflect.DeepEqual(u.Interface(), d.Interface()) {
			continue // not written, or written as the default
		}
		switch u.Kind() {
		case reflect.Slice:
			if uv.Type().Field(i).Name == "TimeKeys" {
				o.Set(reflect.AppendSlice(u, o))
			} else {
				o.Set(reflect.AppendSlice(o, u))
			}
		case reflect.Map:
			o.Set(mergeMaps(o, u))
		default:
			o.Set(u)
		}
	}
	out.Preset = ""
	return out, nil
}

// mergeMaps is base with over laid over it; tables of tables (value_maps)
// merge one level down too.
func mergeMaps(base, over reflect.Value) reflect.Value {
	out := reflect.MakeMap(over.Type())
	for _, src := range []reflect.Value{base, over} {
		iter := src.MapRange()
		for iter.Next() {
			k, v := iter.Key(), iter.Value()
			if prev := out.MapIndex(k); prev.IsValid() && v.Kind() == reflect.Map {
				v = mergeMaps(prev, v)
			}
			out.SetMapIndex(k, v)
		}
	}
	return out
}
