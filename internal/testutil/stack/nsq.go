package stack

import (
	"encoding/json"
	"fmt"
	"net/url"
)

// ChannelStats are the counters nsqd keeps for one channel.
type ChannelStats struct {
	Name         string `json:"channel_name"`
	Depth        int64  `json:"depth"`
	InFlight     int64  `json:"in_flight_count"`
	Deferred     int64  `json:"deferred_count"`
	MessageCount int64  `json:"message_count"`
	RequeueCount int64  `json:"requeue_count"`
	TimeoutCount int64  `json:"timeout_count"`
	ClientCount  int64  `json:"client_count"`
	Clients      []struct {
		UserAgent string `json:"user_agent"`
		TLS       bool   `json:"tls"`
		Authed    bool   `json:"authed"`
	} `json:"clients"`
}

// TopicStats are the counters nsqd keeps for one topic.
type TopicStats struct {
	Name         string         `json:"topic_name"`
	Depth        int64          `json:"depth"`
	MessageCount int64          `json:"message_count"`
	Channels     []ChannelStats `json:"channels"`
}

// Channel returns the stats of the named channel, if it exists.
func (t TopicStats) Channel(name string) (ChannelStats, bool) {
	for _, c := range t.Channels {
		if c.Name == name {
			return c, true
		}
	}
	return ChannelStats{}, false
}

// TopicStats reads nsqd's /stats for one topic; a topic that does not
// exist yet has zero stats.
func (n *NSQD) TopicStats(topic string) (TopicStats, error) {
	u := fmt.Sprintf("http://%s/stats?format=json&topic=%s", n.HTTPAddr, url.QueryEscape(topic))
	resp, err := httpClient.Get(u)
	if err != nil {
		return TopicStats{}, err
	}
	defer resp.Body.Close()
	var s struct {
		Topics []TopicStats `json:"topics"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return TopicStats{}, fmt.Errorf("decoding nsqd stats: %w", err)
	}
	for _, t := range s.Topics {
		if t.Name == topic {
			return t, nil
		}
	}
	return TopicStats{Name: topic}, nil
}
