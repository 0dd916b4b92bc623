package store

import "fmt"

// allowedTransitions is the vetting state machine. Re-approving an approved
// digest is deliberately missing: an approval (and its expiry) is a decision
// about the evidence of one moment, so extending it means revoking, returning
// to quarantine and deciding again, which leaves that decision in the history.
var allowedTransitions = map[State][]State{
	Quarantined: {Approved, Rejected},
	Approved:    {Revoked},
	Rejected:    {Quarantined},
	Revoked:     {Quarantined},
}

// CheckTransition returns nil if digest may move from one state to another,
// otherwise an error wrapping ErrInvalidTransition that tells the user what is
// allowed. Backends share it so they agree on the state machine and its words.
func CheckTransition(digest string, from, to State) error {
	if !to.Valid() {
		return fmt.Errorf("%w: cannot move %s to %q, which is not a state; use quarantined, approved, rejected or revoked", ErrInvalidTransition, digest, to)
	}
	for _, s := range allowedTransitions[from] {
		if s == to {
			return nil
		}
	}
	var hint string
	switch {
	case from == Approved && to == Approved:
		hint = "revoke it and return it to quarantine to approve it again"
	case to == Approved:
		hint = "only quarantined digests can be approved"
	case to == Rejected:
		hint = "only quarantined digests can be rejected"
	case to == Revoked:
		hint = "only approved digests can be revoked"
	default:
		hint = "only rejected or revoked digests can return to quarantine"
	}
	return fmt.Errorf("%w: %s is %s; %s", ErrInvalidTransition, digest, from, hint)
}
