package api

import "fmt"

// Error is the body of every error response. Code is from the catalogue
// below; Message is for people and may change; Epoch and Seq are set where
// the code says.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// For CodeStaleEpoch and CodeCommitConflict: the group's current epoch,
	// and for CodeCommitConflict the log position of the commit that won.
	Epoch uint64 `json:"epoch,omitempty"`
	Seq   uint64 `json:"seq,omitempty"`
}

func (e *Error) Error() string { return fmt.Sprintf("%s: %s", e.Code, e.Message) }

// Code names an error. The catalogue is append-only: a code, once
// published, keeps its meaning and its HTTP status forever.
type Code string

// The catalogue. Each code's HTTP status is in Status.
const (
	CodeBadRequest       Code = "bad_request"        // 400 malformed JSON, missing field, bad base64
	CodeTooLarge         Code = "too_large"          // 413 body or message over the limit
	CodeMalformedMLS     Code = "malformed_mls"      // 400 not a well-formed MLSMessage of the kind expected
	CodeNoCertificate    Code = "no_certificate"     // 401 the request needs a device certificate
	CodeUnknownDevice    Code = "unknown_device"     // 401 the certificate names no enrolled device
	CodeRevokedDevice    Code = "revoked_device"     // 403 the device was revoked
	CodeBadInvitation    Code = "bad_invitation"     // 403 unknown, used, expired or wrong-secret invitation (one code for all: no oracle)
	CodeNotMember        Code = "not_member"         // 403 the device is not a member of the group
	CodePolicy           Code = "policy"             // 403 the member list would break policy (a non-enrolled or revoked device)
	CodeUnknownGroup     Code = "unknown_group"      // 404
	CodeUnknownUser      Code = "unknown_user"       // 404
	CodeNotFound         Code = "not_found"          // 404 other resources (welcome, device)
	CodeGroupExists      Code = "group_exists"       // 409
	CodeStaleEpoch       Code = "stale_epoch"        // 409 the message is not for the group's current epoch; Epoch is set
	CodeCommitConflict   Code = "commit_conflict"    // 409 another commit won this epoch; Epoch and Seq (the winner) are set
	CodeReplay           Code = "replay"             // 409 this exact message is already in the log; Seq is set
	CodeNoKeyPackages    Code = "no_key_packages"    // 409 a device of the user has neither a one-time nor a last-resort KeyPackage
	CodeOverloaded       Code = "overloaded"         // 503 retry later
	CodeInternal         Code = "internal"           // 500
	CodeMethodNotAllowed Code = "method_not_allowed" // 405
	CodeBeyondLog        Code = "beyond_log"         // 416 the access log holds fewer records than the size asked for
)

// Status maps each code to its HTTP status.
var Status = map[Code]int{
	CodeBadRequest:       400,
	CodeTooLarge:         413,
	CodeMalformedMLS:     400,
	CodeNoCertificate:    401,
	CodeUnknownDevice:    401,
	CodeRevokedDevice:    403,
	CodeBadInvitation:    403,
	CodeNotMember:        403,
	CodePolicy:           403,
	CodeUnknownGroup:     404,
	CodeUnknownUser:      404,
	CodeNotFound:         404,
	CodeGroupExists:      409,
	CodeStaleEpoch:       409,
	CodeCommitConflict:   409,
	CodeReplay:           409,
	CodeNoKeyPackages:    409,
	CodeOverloaded:       503,
	CodeInternal:         500,
	CodeMethodNotAllowed: 405,
	CodeBeyondLog:        416,
}
