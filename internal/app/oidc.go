package app

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/terratask/terratask/oidc"
	"github.com/terratask/terratask/secret/master"
	"github.com/terratask/terratask/store"
)

// oidcRefreshEvery is how often the issuer's keys are refreshed (created,
// rotated, dropped: package oidc decides).
const oidcRefreshEvery = time.Minute

// startOIDC builds the OIDC issuer of --oidc-issuer (issue 22) over the
// store's signing keys, sealed with the control plane's box, refreshes its
// keys now and then every minute until ctx ends. An empty url: no issuer
// (nil).
func startOIDC(ctx context.Context, url string, st store.Store, box *master.Box, log *zap.Logger) (*oidc.Issuer, error) {
	if url == "" {
		return nil, nil
	}
	keys, ok := st.(store.OIDCKeyStore)
	if !ok {
		return nil, fmt.Errorf("--oidc-issuer: the store (%T) cannot keep the issuer's signing keys", st)
	}
	log = log.Named("oidc")
	iss, err := oidc.New(url, keys, box, oidc.WithLogger(log))
	if err != nil {
		return nil, fmt.Errorf("--oidc-issuer: %w", err)
	}
	if err := iss.Refresh(ctx); err != nil {
		return nil, fmt.Errorf("--oidc-issuer: preparing the signing keys: %w", err)
	}
	go func() {
		t := time.NewTicker(oidcRefreshEvery)
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				if err := iss.Refresh(ctx); err != nil && ctx.Err() == nil {
					log.Warn("refreshing the OIDC signing keys failed; retrying in a minute", zap.Error(err))
				}
			}
		}
	}()
	return iss, nil
}

// localTokens is the token source of runners that run in the control
// plane or hold its store: with iss nil (no --oidc-issuer, or a runner
// with --store), every token request fails with store.ErrNoOIDCIssuer.
func localTokens(st store.Store, iss *oidc.Issuer) oidc.LocalTokens {
	return oidc.LocalTokens{Tokens: oidc.TaskTokens{Issuer: iss, Sets: st}, Store: st}
}
