package auth

import (
	"context"
	"fmt"
	"os"

	"go.uber.org/zap"
)

// Reload reads the keys file at path and swaps k's keys for its keys plus
// extra (keys that do not come from the file, such as `terratask dev`'s admin
// key). On any error k keeps its keys.
func Reload(path string, k *Keyring, extra ...Key) (int, error) {
	list, err := LoadFile(path)
	if err != nil {
		return 0, err
	}
	all := append(append([]Key{}, extra...), list...)
	if err := k.Replace(all); err != nil {
		return 0, fmt.Errorf("keys file %s: %w", path, err)
	}
	return len(all), nil
}

// WatchReload reloads the keys file each time ch delivers (SIGHUP), until ctx
// ends. A file that fails to load or validate is logged and the old keys stay.
func WatchReload(ctx context.Context, ch <-chan os.Signal, path string, k *Keyring, log *zap.Logger, extra ...Key) {
	if log == nil {
		log = zap.NewNop()
	}
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-ch:
			if !ok {
				return
			}
			n, err := Reload(path, k, extra...)
			if err != nil {
				log.Error("reloading keys file; keeping the old keys", zap.String("path", path), zap.Error(err))
				continue
			}
			log.Info("keys file reloaded", zap.String("path", path), zap.Int("keys", n))
		}
	}
}
