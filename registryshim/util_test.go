package registryshim_test

import (
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
)

func mutateAppend(img v1.Image, l v1.Layer) (v1.Image, error) { return mutate.AppendLayers(img, l) }
