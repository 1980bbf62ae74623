package client

import (
	"encoding/json"
	"fmt"

	"candor"
)

// content is the plaintext of every application message candor sends: a
// JSON object, so that kinds other than text (a conversation's name, a
// reaction) can be added without breaking older devices, which ignore the
// fields they do not know. It is padded and encrypted by MLS; the server
// never sees it.
type content struct {
	Text string `json:"text"`
}

func encodeText(text string) ([]byte, error) {
	return json.Marshal(content{Text: text})
}

func decodeContent(b []byte) (content, error) {
	var c content
	if err := json.Unmarshal(b, &c); err != nil {
		return content{}, fmt.Errorf("message content: %w", candor.ErrInvalid)
	}
	return c, nil
}
