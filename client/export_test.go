package client

// For the external tests.
const (
	AckInterval = ackInterval
	MsgAckSent  = msgAckSent
)
