package api

import "time"

// VIPStatus is one VRRP instance as GET /v1/vips lists it and POST
// /v1/vips/{name}/move answers it.
type VIPStatus struct {
	Name      string `json:"name"`
	Interface string `json:"interface"`
	VRID      int    `json:"vrid"`
	// State is INIT, BACKUP, MASTER or FAULT.
	State string `json:"state"`
	// Priority is the priority advertised now; BasePriority the configured one.
	Priority     int `json:"priority"`
	BasePriority int `json:"base_priority"`
	// Master is the master's address (this node's when master), "" when unknown, and
	// MasterPriority what it advertises.
	Master         string `json:"master"`
	MasterPriority int    `json:"master_priority"`
	// Addresses are the virtual addresses with their prefix.
	Addresses []string `json:"addresses"`
	// Holding: handed over (move) but still holding the addresses until the new master
	// speaks. Yielding: handed over, does not preempt until it next becomes master.
	Holding  bool `json:"holding"`
	Yielding bool `json:"yielding"`
	Accept   bool `json:"accept"`
	// Faults lists what keeps the instance in FAULT.
	Faults []string `json:"faults"`
	// Transitions counts state changes since the instance started.
	Transitions     uint64     `json:"transitions"`
	LastTransition  *time.Time `json:"last_transition,omitempty"`
	AdvertsSent     uint64     `json:"adverts_sent"`
	AdvertsReceived uint64     `json:"adverts_received"`
	SendErrors      uint64     `json:"send_errors"`
	AddressErrors   uint64     `json:"address_errors"`
	// Dropped counts the advertisements dropped, by reason.
	Dropped map[string]uint64 `json:"dropped"`
}
