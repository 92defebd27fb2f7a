// Package layout holds no code: its tests enforce the shape of the module.
// Folders depend one way (each package sits on a layer and imports only
// packages on lower layers), shipped code never imports a test helper,
// every package has exactly one package doc comment, and no shipped file
// outside the bench lab grows past 600 lines.
package layout
