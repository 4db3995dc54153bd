// Package boundary holds no code: its test keeps the trust boundary in the
// layout. A runner host is trusted with one org; it holds that org's key and
// no store, so the packages it runs (its activities, its client of the
// runner API, the sandbox and watchdog of its steps) must not import what
// holds the master key (the control plane's codec), a store driver, the
// server or the control plane's activities and workflows. And the leaf
// packages stay leaves: task imports nothing of terratask, api only task.
package boundary
