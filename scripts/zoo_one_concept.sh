#!/usr/bin/env bash
# Issue-4 measurement: every method row on one concept of smollm2-135m, default grids and hyper-parameters.
cd /work/main
for mf in split:vector sft:vector reps:vector diffmean:vector prompting:prompt split:lora split:local_weight sft:lora reps:lora sft:local_weight reps:local_weight; do
  m=${mf%%:*}; f=${mf##*:}
  start=$(date +%s)
  .venv/bin/steer-pu run --model smollm2-135m --method $m --form $f --concepts power_seeking --threads 2 --out runs/zoo1/$m-$f > runs/zoo1-$m-$f.log 2>&1
  echo "$m $f rc=$? wall=$(( $(date +%s) - start ))s" >> runs/zoo1.done
done
