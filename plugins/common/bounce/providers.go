package bounce

import "strings"

// fromProvider is the reason a provider's own classification gives, or
// "" where it gives none (or one too coarse: "General", "Transient",
// "SoftBounce"), so that the reply text decides. Sources, per provider:
//
//   - Amazon SES: the bounce object's bounceType/bounceSubType (SES
//     Developer Guide, "Contents of event data": Undetermined, General,
//     NoEmail, Suppressed, OnAccountSuppressionList, MailboxFull,
//     MessageTooLarge, ContentRejected, AttachmentRejected); a Reject's
//     reason, whose "only possible value is Bad content" (a virus); a
//     Rendering Failure (the template could not be rendered).
//   - SparkPost (Momentum): bounce_class, its bounce classification codes
//     (1 Undetermined, 10 Invalid Recipient, 20 Soft Bounce, 21 DNS
//     Failure, 22 Mailbox Full, 23 Too Large, 24 Timeout, 25 Admin
//     Failure, 30 Generic Bounce: No RCPT, 40 Generic Bounce, 50 Mail
//     Block, 51 Spam Block, 52 Spam Content, 53 Prohibited Attachment, 54
//     Relaying Denied, 60 Auto-Reply, 70 Transient Failure, 80 Subscribe,
//     90 Unsubscribe, 100 Challenge-Response).
//   - Postmark: the bounce Type (its Bounce API's bounce types).
//   - Mandrill: msg.bounce_description (bad_mailbox, invalid_domain,
//     mailbox_full, spam_related, policy_related, invalid_content,
//     too_large, timed_out, unroutable, general, bad_message...).
//   - SendGrid: a dropped event's reason (its Event Webhook reference:
//     Bounced Address, Unsubscribed Address, Spam Reporting Address,
//     Invalid SMTPAPI header).
//   - Mailgun: the failed event's reason (suppress-bounce,
//     suppress-complaint, suppress-unsubscribe, old, espblock, generic,
//     bounce).
func fromProvider(in Input) string {
	switch strings.ToLower(in.Provider) {
	case "ses":
		switch {
		case in.Event == "rejected" && in.Reason == "Bad content":
			return VirusDetected // "the only possible value": SES found a virus
		case in.Event == "failed":
			return ContentError // a Rendering Failure: the template and its data
		}
		switch in.BounceSubType {
		case "NoEmail":
			return UserUnknown
		case "Suppressed", "OnAccountSuppressionList":
			return Suppressed
		case "MailboxFull":
			return MailboxFull
		case "MessageTooLarge":
			return MesgTooBig
		case "ContentRejected", "AttachmentRejected":
			return ContentError
		}
	case "sparkpost":
		switch in.BounceClass {
		case 10, 30:
			return UserUnknown
		case 21:
			return HostUnknown
		case 22:
			return MailboxFull
		case 23:
			return MesgTooBig
		case 24:
			return Expired
		case 50:
			return Blocked
		case 51:
			return BadReputation
		case 52:
			return SpamDetected
		case 53:
			return VirusDetected
		case 54:
			return NoRelaying
		case 25:
			return PolicyViolation
		}
	case "postmark":
		switch in.BounceType {
		case "HardBounce", "BadEmailAddress":
			return UserUnknown
		case "DnsError":
			return HostUnknown
		case "SpamNotification":
			return SpamDetected
		case "VirusNotification":
			return VirusDetected
		case "ManuallyDeactivated", "Unconfirmed":
			return Suppressed
		case "Blocked":
			return Blocked
		case "DMARCPolicy":
			return PolicyViolation
		case "SpamComplaint":
			return Feedback
		case "AddressChange":
			return HasMoved
		}
	case "mandrill":
		switch in.BounceType {
		case "bad_mailbox":
			return UserUnknown
		case "invalid_domain", "unroutable":
			return HostUnknown
		case "mailbox_full":
			return MailboxFull
		case "spam_related":
			return SpamDetected
		case "policy_related":
			return PolicyViolation
		case "invalid_content", "bad_message":
			return ContentError
		case "too_large":
			return MesgTooBig
		case "timed_out":
			return Expired
		}
	case "sendgrid":
		// A dropped event (rejected here): SendGrid did not send, and its
		// reason says why ("Bounced Address", "Unsubscribed Address",
		// "Spam Reporting Address": the address is on a suppression list).
		if in.Event == "rejected" {
			switch in.Text {
			case "Bounced Address", "Unsubscribed Address", "Spam Reporting Address", "Invalid SMTPAPI header":
				if in.Text == "Invalid SMTPAPI header" {
					return ContentError
				}
				return Suppressed
			}
		}
	case "mailgun":
		switch in.Reason {
		case "suppress-bounce", "suppress-complaint", "suppress-unsubscribe":
			return Suppressed
		case "espblock":
			return Blocked
		case "old":
			return Expired
		}
	}
	return ""
}
