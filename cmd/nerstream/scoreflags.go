package main

import (
	"flag"

	"github.com/nerstream/nerstream/model"
)

// scoreFlags are the entity-score flags of annotate and serve:
// model.min_score and model.calibration of the configuration.
type scoreFlags struct {
	minScore    float64
	calibration string
}

func (f *scoreFlags) register(fset *flag.FlagSet) {
	fset.Float64Var(&f.minScore, "min-score", 0, "drop entities whose score (0 to 1, after --calibration) is lower; entities without a score are kept (default 0: keep all)")
	fset.StringVar(&f.calibration, "calibration", "", "a calibration file that eval --calibrate wrote: entity scores go through it before --min-score (default: raw scores)")
}

// checkScores refuses, in one line naming the setting, a minimum score
// outside [0, 1] and a calibration file that model.ReadCalibration
// refuses: before any input is read or anything listens.
func checkScores(minName string, minScore float64, calName, calibration string) error {
	if !(minScore >= 0 && minScore <= 1) { // NaN too
		return usagef("%s %v: must be between 0 and 1", minName, minScore)
	}
	if calibration != "" {
		if _, err := model.ReadCalibration(calibration); err != nil {
			return usagef("%s: %v", calName, err)
		}
	}
	return nil
}
